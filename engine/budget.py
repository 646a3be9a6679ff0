"""The spending limit every model call is checked against: what its gateways spent, what
their calls in flight may cost at worst, and why it stopped the run when it did."""

from typing import Protocol

from engine.control import RunControl


class Spender(Protocol):
    """What the budget reads of a call gateway (engine/calls.py)."""

    control: RunControl
    reserved: float  # the worst case of its calls in flight


class BudgetExceeded(Exception):
    """The next call could push spending past max_cost_usd: stop scheduling."""


class Budget:
    """A spending limit shared by every gateway that holds it: one experiment's, or all of a
    sweep's. A call may start only if what they have spent, plus every call in flight at its
    worst case, plus this call's worst case stays within the limit; once that fails, it
    stays exceeded for all of them."""

    def __init__(self, limit_usd: float | None) -> None:
        self.limit_usd = limit_usd
        self.gateways: list[Spender] = []
        self.exceeded = False
        self.refusal: tuple[float, float, float] | None = None  # the first call refused: worst, spent, reserved
        # What experiments of a resumed sweep spent before, by directory, until each starts
        # again (its gateway then carries that spend): counted from the start.
        self.pending: dict[str, float] = {}

    def spent(self) -> float:
        return sum(g.control.stats.cost for g in self.gateways) + sum(self.pending.values())

    def reserved(self) -> float:
        return sum(g.reserved for g in self.gateways)

    def committed(self) -> float:
        return self.spent() + self.reserved()

    def check(self, worst: float) -> None:
        if not self.exceeded and self.limit_usd is not None and self.committed() + worst > self.limit_usd:
            self.exceeded = True
            self.refusal = (worst, self.spent(), self.reserved())
        if self.exceeded:
            raise BudgetExceeded(self.stop_message())

    def stop_message(self) -> str:
        """Why no more calls start: the worst case of the call refused against the limit and
        what was spent (and held for calls in flight) then; or a limit reached before."""
        limit = dollars(self.limit_usd or 0.0)
        if self.refusal is None:  # a resumed run whose budget was reached before it
            return f"stopped: the cost budget ({limit}) was reached ({dollars(self.spent())} spent)"
        worst, spent, reserved = self.refusal
        held = f", {dollars(reserved)} held for calls in flight" if dollars(reserved) != "$0" else ""
        now = dollars(self.spent())
        after = f"; {now} in all once the calls in flight finished" if now != dollars(spent) else ""
        return (
            f"stopped: the next call's worst-case cost ({dollars(worst)}) would pass the budget "
            f"({limit}; {dollars(spent)} spent{held}){after}"
        )


def dollars(usd: float) -> str:
    """'$0.00055', '$1.25', '$10': up to 6 decimals, trailing zeros dropped."""
    usd = round(usd, 6) + 0.0  # a float remainder below a millionth is $0, never "$-0"
    return "$" + (f"{usd:.6f}".rstrip("0").rstrip(".") or "0")
