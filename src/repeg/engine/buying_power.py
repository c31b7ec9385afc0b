"""An escalated buy the broker refused for want of buying power: sent again, once, for what the buying power covers.

Reactive, not proactive: the account is read only after the broker refused the escalation
(`InsufficientBuyingPowerError`, from Alpaca's 403 "insufficient buying power" or the simulator's same refusal),
so an escalation the buying power pays for costs no extra broker call (Alpaca's rate limit) and changes no event.
After the refusal the remainder goes out once more, under the next attempt's client order id, for the largest
quantity the buying power then covers at the price the escalation may pay: the collar limit, or for a market order
the ask plus `escalation_collar_bps` (the buffer buy sizing costs with). Its intent carries the cut
(`BuyingPowerCap`); once that order has closed the leg ends (`capped_out`), partial, with the cut's reason, and
nothing more is sent for it: a second refusal, or a buying power that covers nothing, fails it at once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

import structlog

from repeg.domain.buying_power import BuyingPowerCap, covered_qty
from repeg.domain.leg import REASON_ESCALATE, LegState
from repeg.domain.lifecycle import LegStatus
from repeg.domain.orders import Side
from repeg.domain.quote import Quote
from repeg.domain.ticks import BPS, ZERO
from repeg.errors import BrokerError, InsufficientBuyingPowerError
from repeg.policy.decide import Submit

if TYPE_CHECKING:  # the monitor, which defines the context, calls in here
    from repeg.engine.monitor import EngineContext

#: How a leg ends: its status and the reason (or error) recorded with it.
Ending = tuple[LegStatus, str]

_log = structlog.get_logger("repeg.engine")


def capped_out(leg: LegState) -> Ending | None:
    """How a leg whose last order was an escalation cut to the buying power ends, once that order has closed with
    a remainder left (partial, or failed if nothing filled, with the cut's reason), or was refused too (failed,
    with the refusal): none of it is sent again. None for any other leg."""
    if leg.status is not LegStatus.IDLE or not leg.orders:
        return None
    last = leg.orders[-1]
    if last.capped is None:
        return None
    if last.order_id is None:  # the broker refused the cut order as well
        return (LegStatus.FAILED, leg.error or last.capped.reason)
    status = LegStatus.INCOMPLETE if leg.filled_qty > ZERO else LegStatus.FAILED  # partial when it bought any
    return (status, last.capped.reason)


def _price(action: Submit, quote: Quote | None, collar_bps: Decimal) -> Decimal | None:
    """The most the escalation may pay a share: its limit, or (a market order) the ask plus the sizing's buffer."""
    if action.limit_price is not None:
        return action.limit_price
    if quote is None or quote.ask <= ZERO:
        return None
    return quote.ask * (1 + collar_bps / BPS)


async def within_buying_power(
    ctx: EngineContext, index: int, action: Submit, quote: Quote | None, refusal: BrokerError
) -> Ending | None:
    """After the broker refused a submit of the leg: for an escalated buy refused for want of buying power, read the
    account once and send what its buying power covers (None: sent, or its outcome unknown); else how the leg
    ends: failed, with the refusal recorded as its error, or the cut's reason when the buying power covers
    nothing."""
    leg = ctx.bus.leg(index)
    failed = (LegStatus.FAILED, leg.error or "refused by the broker")
    price = _price(action, quote, ctx.config.escalation_collar_bps)
    escalated_buy = leg.side is Side.BUY and action.reason == REASON_ESCALATE
    if not escalated_buy or price is None or not isinstance(refusal, InsufficientBuyingPowerError):
        return failed  # any other refusal ends the leg as before
    try:
        account = await ctx.broker.get_account()
    except BrokerError as exc:
        _log.warning(
            "buying_power_unread", run_id=ctx.bus.run_id, symbol=leg.symbol, order_id=None, error=str(exc)
        )
        return failed
    requested = leg.remaining_qty
    sent = covered_qty(requested, price, account.buying_power, leg.spec.whole_shares)
    cap = BuyingPowerCap(
        requested_qty=requested, sent_qty=sent, buying_power=account.buying_power, price=price
    )
    _log.info(
        "escalation_capped",
        run_id=ctx.bus.run_id,
        correlation_id=ctx.bus.correlation(index),
        symbol=leg.symbol,
        order_id=None,
        requested_qty=str(requested),
        sent_qty=str(sent),
        buying_power=str(account.buying_power),
    )
    if sent <= ZERO:
        return (LegStatus.FAILED, cap.reason)  # as any refused remainder: its reason is the leg's error
    again = await ctx.gateway.submit(
        index,
        action.order_type,
        action.limit_price,
        step=action.step,
        reason=action.reason,
        quote=quote,
        cap=cap,
    )
    return None if again is None else (LegStatus.FAILED, ctx.bus.leg(index).error or str(again))
