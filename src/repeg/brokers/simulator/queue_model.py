"""Queue position of a resting limit order, from top-of-book quotes and trade prints: the pure core.

The rules (see docs/FILL_MODELS.md for the assumptions and known biases):

1. Joining. A limit that rests at the near touch joins the back of the size displayed there at that instant. A
   limit that improves on the near touch (inside the spread) is alone at its price: nobody ahead. A limit behind
   the touch cannot see its price level (the data is top of book only) and assumes the near touch's displayed size
   ahead of it, a stand-in for the unknown depth.
2. Prints. Every print after the join at or through the limit (at or below it for a buy, at or above for a sell)
   first consumes the queue ahead; what is left of the print fills the order, up to its remaining quantity, at
   the limit price. So partial fills follow the prints. Prints at the order's exact timestamp are not counted
   (the order was not there yet when they happened).
3. Crossing quote. A quote whose far side reaches the limit (ask <= limit for a buy, bid >= limit for a sell) fills
   all that remains at once, at the limit price.
4. Priority. A replace or a cancel-and-resubmit is a new order: it joins again at the back (rule 1).
5. Marketable on arrival. A market order, or a limit already marketable when it starts working, executes at once at
   the far touch (the paper rule, never partial: `QueueFillModel`).
6. Our own orders. The displayed size does not hold our orders, so a joining order also has ahead of it what our
   other resting orders of its symbol and side, at its price or better, still have to fill (`QueueFillModel`): a
   print is not counted once for each of them. What they will fill from prints only they reach (at their better
   price), or on a quote crossing only them, is not ahead of it. An order of ours that joins later at
   a better price does not move ahead of one already resting (the resting one's next fill is already planned), so
   a print reaching both can still fill both. One behind an order of ours that is cancelled or replaced moves up
   by what that order still had to fill where its prints reach it (`moved_up`; `QueueFillModel.release` names it,
   and the broker plans it again).

Everything here is a function of integer arrays ($0.0001 price units, nanosecond timestamps) and Decimal
quantities; nothing reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal

import numpy as np
from numpy.typing import NDArray

from repeg.brokers.simulator.fill_models import FillPlan, PaperFillModel, RestingOrder
from repeg.domain.orders import Side
from repeg.domain.ticks import ZERO
from repeg.market.tape import Int64Array, QuoteTape, SymbolTrades, TradeTape

#: Prints examined per numpy step while looking for the one that reaches the order.
_CHUNK = 4096


@dataclass(frozen=True)
class QueueSlot:
    """One resting limit order's place in line."""

    symbol: str
    side: Side
    limit_units: int
    remaining: Decimal
    #: Shares still ahead of the order at its price.
    ahead: Decimal
    #: Index of the first print the order has not yet seen.
    trade_cursor: int
    #: Timestamp (ns) from which quotes can cross the order.
    since_ns: int


@dataclass(frozen=True)
class QueueFill:
    """An execution the queue rules produce: `qty` at `price_units`, at `ts_ns`."""

    ts_ns: int
    qty: Decimal
    price_units: int
    #: True when a crossing quote filled everything left (rule 3), False for a print (rule 2).
    by_quote: bool
    #: Cursor past the print that produced this fill (unchanged for a quote fill).
    next_trade_cursor: int


def _through(side: Side, prices: Int64Array, limit_units: int) -> NDArray[np.bool_]:
    return prices <= limit_units if side is Side.BUY else prices >= limit_units


def queue_ahead_at_join(tape: QuoteTape, symbol: str, side: Side, limit_units: int, ts_ns: int) -> Decimal:
    """Shares ahead of a limit joining at `ts_ns` (rule 1); zero before the first quote."""
    i = tape.index_at_ns(symbol, ts_ns)
    if i is None:
        return ZERO
    col = tape.columns(symbol)
    near = int(col.bid[i]) if side is Side.BUY else int(col.ask[i])
    size = int(col.bid_size[i]) if side is Side.BUY else int(col.ask_size[i])
    improves = limit_units > near if side is Side.BUY else limit_units < near
    return ZERO if improves or near <= 0 else Decimal(size)


def join(
    tape: QuoteTape,
    trades: SymbolTrades | None,
    *,
    symbol: str,
    side: Side,
    limit_units: int,
    qty: Decimal,
    ts_ns: int,
) -> QueueSlot:
    """A new resting order at `ts_ns` (a replace is a new join: it goes to the back)."""
    cursor = 0 if trades is None else int(np.searchsorted(trades.ts, ts_ns, side="right"))
    return QueueSlot(
        symbol=symbol,
        side=side,
        limit_units=limit_units,
        remaining=qty,
        ahead=queue_ahead_at_join(tape, symbol, side, limit_units, ts_ns),
        trade_cursor=cursor,
        since_ns=ts_ns,
    )


def _counted(
    trades: SymbolTrades, slot: QueueSlot, start: int, stop: int, print_share_pct: int
) -> Int64Array:
    """The shares of prints `start` to `stop` that count for the order (at or through its limit, rule 2)."""
    prices, sizes = trades.price[start:stop], trades.size[start:stop]
    return np.where(_through(slot.side, prices, slot.limit_units), sizes * print_share_pct // 100, 0)


def _next_print_fill(trades: SymbolTrades, slot: QueueSlot, print_share_pct: int) -> QueueFill | None:
    """The first print from the cursor on that reaches the order through the queue ahead (rule 2)."""
    ahead = slot.ahead
    start = slot.trade_cursor
    while start < len(trades):
        stop = min(start + _CHUNK, len(trades))
        counted = _counted(trades, slot, start, stop, print_share_pct)
        reach = np.cumsum(counted)
        # Whole shares printed pass `ahead` exactly when they pass its floor (typed: numpy knows no Decimal).
        hit = np.flatnonzero(reach > int(ahead.to_integral_value(rounding=ROUND_FLOOR)))
        if len(hit):
            k = int(hit[0])
            surplus = Decimal(int(reach[k])) - ahead
            qty = min(surplus, Decimal(int(counted[k])), slot.remaining)
            return QueueFill(
                ts_ns=int(trades.ts[start + k]),
                qty=qty,
                price_units=slot.limit_units,
                by_quote=False,
                next_trade_cursor=start + k + 1,
            )
        ahead -= Decimal(int(reach[-1])) if len(reach) else ZERO
        start = stop
    return None


def _next_quote_fill(tape: QuoteTape, slot: QueueSlot) -> QueueFill | None:
    """The first quote after the join whose far side reaches the limit (rule 3)."""
    current = tape.index_at_ns(slot.symbol, slot.since_ns)
    start = 0 if current is None else current + 1
    i = tape.next_marketable(slot.symbol, slot.side, slot.limit_units, start)
    if i is None:
        return None
    return QueueFill(
        ts_ns=tape.time_ns(slot.symbol, i),
        qty=slot.remaining,
        price_units=slot.limit_units,
        by_quote=True,
        next_trade_cursor=slot.trade_cursor,
    )


def next_fill(
    tape: QuoteTape, trades: SymbolTrades | None, slot: QueueSlot, *, print_share_pct: int = 100
) -> QueueFill | None:
    """The order's next execution under the queue rules, or None if the data never fills it.

    A quote crossing at the same instant as a print wins (it fills everything left). `print_share_pct` is the
    share of each print that counts (100: every print could have traded at our venue; lower values temper the
    model's main optimistic bias, see docs/FILL_MODELS.md).
    """
    if slot.remaining <= ZERO:
        return None
    by_quote = _next_quote_fill(tape, slot)
    by_print = None if trades is None else _next_print_fill(trades, slot, print_share_pct)
    if by_print is None or (by_quote is not None and by_quote.ts_ns <= by_print.ts_ns):
        return by_quote
    return by_print


def moved_up(
    trades: SymbolTrades, slot: QueueSlot, gone: Decimal, now_ns: int, *, print_share_pct: int = 100
) -> QueueSlot:
    """The slot at `now_ns` once `gone` shares ahead of it left the queue (an order of ours ahead was cancelled
    or replaced): the prints up to `now_ns` consumed what they reach of the queue ahead, the rest shrinks by `gone`.
    For a slot whose next fill is after `now_ns` (its prints up to then leave something ahead)."""
    stop = int(np.searchsorted(trades.ts, now_ns, side="right"))
    seen = Decimal(int(_counted(trades, slot, slot.trade_cursor, stop, print_share_pct).sum()))
    ahead = max(ZERO, slot.ahead - seen - gone)
    return replace(slot, ahead=ahead, trade_cursor=max(stop, slot.trade_cursor))


def after_fill(slot: QueueSlot, fill: QueueFill) -> QueueSlot:
    """The slot once `fill` happened: less remaining, nobody ahead any more, cursor past the print."""
    return replace(
        slot,
        remaining=slot.remaining - fill.qty,
        ahead=ZERO,
        trade_cursor=fill.next_trade_cursor,
        since_ns=max(slot.since_ns, fill.ts_ns) if fill.by_quote else slot.since_ns,
    )


class QueueFillModel:
    """`FillModel` with queue position: limits fill by the rules above, market orders at the far touch at once.

    Per working order it keeps a `QueueSlot` (keyed by order id) and the plan last handed out; when the broker
    asks again with that plan's cursor, the plan is taken as having happened. A replace arrives as a new order id,
    so it joins at the back by construction. A limit already marketable when it starts working executes at once
    at the far touch, as under the paper model. Without a trade tape only crossing quotes fill resting limits
    (the most pessimistic reading of the model).
    """

    def __init__(
        self, tape: QuoteTape, trades: TradeTape | None, *, seed: int, print_share_pct: int = 100
    ) -> None:
        if not 0 < print_share_pct <= 100:
            raise ValueError(f"print_share_pct={print_share_pct} must lie in (0, 100]")
        self._tape = tape
        self._trades = trades
        self._share = print_share_pct
        # Market orders and marketable-on-arrival limits: the paper rule, never partial (queue fills are not random).
        self._immediate = PaperFillModel(tape, seed=seed, partial_rate=0.0)
        self._slots: dict[str, QueueSlot] = {}
        self._plans: dict[str, QueueFill] = {}
        #: Per order of ours, the orders that joined behind it counting part of it ahead (rule 6), in join order.
        self._behind: dict[str, dict[str, None]] = {}

    @property
    def name(self) -> str:
        return "queue"

    def _prints(self, symbol: str) -> SymbolTrades | None:
        if self._trades is None or symbol not in self._trades:
            return None
        return self._trades.columns(symbol)

    def _marketable_now(self, order: RestingOrder, now_ns: int) -> bool:
        current = self._tape.index_at_ns(order.symbol, now_ns)
        if current is None or order.limit_units is None:
            return order.limit_units is None
        return self._tape.next_marketable(order.symbol, order.side, order.limit_units, current) == current

    def _slot(self, order: RestingOrder, limit_units: int, after: int | None) -> QueueSlot:
        slot = self._slots.get(order.order_id)
        if slot is None:
            slot = join(
                self._tape,
                self._prints(order.symbol),
                symbol=order.symbol,
                side=order.side,
                limit_units=limit_units,
                qty=order.remaining,
                ts_ns=order.queued_since_ns,
            )
            slot = replace(slot, ahead=slot.ahead + self._ours_ahead(slot, order.order_id))
        planned = self._plans.pop(order.order_id, None)
        if after is not None and planned is not None:
            slot = after_fill(slot, planned)
        return replace(slot, remaining=order.remaining)

    def _ours_ahead(self, joining: QueueSlot, joining_id: str) -> Decimal:
        """What our own resting orders of the symbol and side, at the joining order's price or better, still have to
        fill, less what they will fill where the joining order's prints do not reach (rule 6): every print that
        reaches the new order reaches them first, and the displayed size does not show them, so without this one
        print filled each of them and the new order again. The joining order is noted behind each of them."""
        prints = self._prints(joining.symbol)
        if prints is None:
            return ZERO  # only crossing quotes fill: nothing is ahead of anything
        ahead = ZERO
        sign = joining.side.sign
        for order_id, slot in self._slots.items():
            if slot.symbol != joining.symbol or slot.side is not joining.side:
                continue
            if slot.limit_units * sign >= joining.limit_units * sign:
                ahead += slot.remaining - self._filled_elsewhere(slot, joining, prints)
                self._behind.setdefault(order_id, {})[joining_id] = None
        return ahead

    def _filled_elsewhere(self, ours: QueueSlot, joining: QueueSlot, prints: SymbolTrades) -> Decimal:
        """What `ours` will fill that never moves the joining order's queue: from prints it does not count (before
        its join, or only at `ours`'s better price) or on a quote that crosses `ours` only (one crossing both fills
        both). Counting that part as ahead kept the joining order waiting for shares long gone."""
        elsewhere = ZERO
        slot = ours
        sign = joining.side.sign
        while (fill := next_fill(self._tape, prints, slot, print_share_pct=self._share)) is not None:
            at = fill.next_trade_cursor - 1
            if fill.by_quote:
                elsewhere += ZERO if self._crosses(joining, fill.ts_ns) else fill.qty
            elif at < joining.trade_cursor or prints.price[at] * sign > joining.limit_units * sign:
                elsewhere += fill.qty
            slot = after_fill(slot, fill)
        return elsewhere

    def _crosses(self, slot: QueueSlot, ts_ns: int) -> bool:
        """True when the quote in force at `ts_ns` reaches the slot's limit (rule 3)."""
        i = self._tape.index_at_ns(slot.symbol, ts_ns)
        return i is not None and self._tape.next_marketable(slot.symbol, slot.side, slot.limit_units, i) == i

    def next_fill(self, order: RestingOrder, now_ns: int, after: int | None) -> FillPlan | None:
        if order.symbol not in self._tape:
            return None
        if order.limit_units is None or (
            after is None and order.order_id not in self._slots and self._marketable_now(order, now_ns)
        ):
            return self._immediate.next_fill(order, now_ns, after)
        slot = self._slot(order, order.limit_units, after)
        self._slots[order.order_id] = slot
        fill = next_fill(self._tape, self._prints(order.symbol), slot, print_share_pct=self._share)
        if fill is None:
            return None
        qty = fill.qty.to_integral_value(rounding=ROUND_DOWN) if order.whole_shares else fill.qty
        if qty <= ZERO:
            return None
        self._plans[order.order_id] = replace(fill, qty=qty)
        return FillPlan(
            ts_ns=max(now_ns, fill.ts_ns),
            qty=qty,
            price_units=fill.price_units,
            cursor=fill.next_trade_cursor,
        )

    def release(self, order_id: str, now_ns: int, left: Decimal) -> tuple[str, ...]:
        """Forget the order; one that leaves with `left` unfilled (cancelled or replaced) no longer holds the orders
        of ours that joined behind it: each moves up by what it still had to fill where their prints reach it
        (rule 6), and is named for the broker to plan again (not one whose next fill is due by `now_ns`)."""
        slot = self._slots.pop(order_id, None)
        self._plans.pop(order_id, None)
        behind = self._behind.pop(order_id, {})
        prints = None if slot is None else self._prints(slot.symbol)
        if slot is None or prints is None or left <= ZERO:
            return ()
        moved: list[str] = []
        for behind_id in behind:
            waiting = self._slots.get(behind_id)
            planned = self._plans.get(behind_id)
            if waiting is None or waiting.ahead <= ZERO or (planned is not None and planned.ts_ns <= now_ns):
                continue  # gone, nobody ahead of it any more (it filled since), or its fill is due already
            gone = left - self._filled_elsewhere(replace(slot, remaining=left), waiting, prints)
            if gone > ZERO:
                self._slots[behind_id] = moved_up(prints, waiting, gone, now_ns, print_share_pct=self._share)
                moved.append(behind_id)
        return tuple(moved)
