"""The app's screens: the live run, the experiment browser and an experiment's detail."""
