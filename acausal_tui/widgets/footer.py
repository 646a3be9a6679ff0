"""The key footer: Textual's, except that it is rebuilt only when the keys it shows change.

Textual's Footer recomposes (unmounts and mounts one widget per key) at every signal that a
screen's bindings may have changed: a focus move, any reactive declared with
`bindings=True`. At the end of a run four such signals came within one frame, each a full
rebuild of the same keys: about 25 ms of the event loop each at 100 agents. Here a rebuild
whose keys equal the ones drawn is skipped; one whose keys differ runs as before."""

from collections.abc import Hashable

from textual.app import ComposeResult
from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._drawn: Hashable | None = None  # what the keys on show were composed from

    def keys_state(self) -> Hashable:
        """Everything compose() reads: each active binding, enabled or not, with its tooltip,
        and whether the palette key is shown."""
        bindings = self.screen.active_bindings
        keys = tuple((key, binding, enabled, tooltip) for key, (_, binding, enabled, tooltip) in bindings.items())
        return (self.show_command_palette, self.app.ENABLE_COMMAND_PALETTE, keys)

    def compose(self) -> ComposeResult:
        state = self.keys_state()
        children = list(super().compose())
        self._drawn = state if children else None  # nothing composed (bindings not ready yet): no skipping
        yield from children

    async def recompose(self) -> None:
        if self.is_attached and self._drawn is not None and self.keys_state() == self._drawn:
            return
        await super().recompose()
