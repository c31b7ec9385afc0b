"""Which trade prints reflect an execution at the market of the moment, by their sale-condition codes.

A trade file's optional `conditions` column holds a print's CTA/UTP sale-condition codes (NYSE Daily TAQ; the
shared data's `../shared/data/quotes/README.md`): one character per code, written as a TAQ field of up to four
positions (blanks between them, e.g. `F I`, `4 B`, `N  I`, `ZI`), empty or `@` for a regular-way print. A print
carrying any code of `EXCLUDED_SALE_CONDITIONS` is dropped when trades are loaded (`repeg.market.loaders`), so
that the queue fill model and the queue-rule fit count only prints that could have executed against a limit
resting in the book at that instant.
"""

from __future__ import annotations

#: Sale conditions of prints that did not execute at the current market, or not at the stamped time
#: (CTA and UTP sale-condition tables, as used by NYSE Daily TAQ's "Sale Condition" field):
#: B/W average price (B under CTA; under UTP, B is a bunched trade: executions of up to a minute before, reported
#: as one print at its stamp); C cash (same-day settlement); N next day; R seller (non-regular settlement);
#: 4 derivatively priced; 7 qualified contingent; V contingent (priced off another instrument or trade);
#: P prior reference price; Z sold out of sequence, L sold last and G bunched sold (reported late: the stamp
#: is not the execution time); T Form T and U extended hours sold out of sequence (outside regular hours);
#: H price variation; 9 corrected consolidated close; Q official open and M official close (reports of a
#: price the market centre already printed, not further volume).
#: Counted, as executions at the market: regular (empty or `@`), E automatic execution, F intermarket sweep,
#: I odd lot, K Rule 127 (NYSE) / Rule 155 (NYSE American), O opening print, 5 re-opening print, 6 closing print,
#: X cross, and every code not listed above (A acquisition, D distribution, S split, Y yellow flag, 1 stopped stock).
EXCLUDED_SALE_CONDITIONS = frozenset("BWCNR47VPZLGTUH9QM")


def is_excluded(conditions: str) -> bool:
    """True when a print's `conditions` text holds any excluded code (each non-blank character is one code)."""
    return not EXCLUDED_SALE_CONDITIONS.isdisjoint(conditions)
