"""Detector settings with every threshold scaled, to show the eval discriminates: a dulled bank (thresholds
x10) must lose recall, a jumpy one (/10) precision. Policy backstops (budget ceilings, sensitive tags) are
not thresholds of a learned baseline and stay as they are."""

from __future__ import annotations

from dataclasses import replace

from spanwarden.detectors.agent_detectors import DetectorSettings
from spanwarden.detectors.price_jump import PriceJumpConfig
from spanwarden.detectors.window_totals import WindowTotalsConfig


def _windows(config: WindowTotalsConfig, factor: float) -> WindowTotalsConfig:
    return replace(config, warn_multiple=config.warn_multiple * factor,
                   critical_multiple=config.critical_multiple * factor,
                   floor_per_min=config.floor_per_min * factor, floor_total=config.floor_total * factor,
                   min_events=max(1, round(config.min_events * factor)))


def _price(config: PriceJumpConfig, factor: float) -> PriceJumpConfig:
    return replace(config, warn_multiple=config.warn_multiple * factor,
                   critical_multiple=config.critical_multiple * factor, floor_usd=config.floor_usd * factor)


def _count(value: int, factor: float) -> int:
    return max(1, round(value * factor))


def scaled(factor: float, base: DetectorSettings | None = None) -> DetectorSettings:
    """`base` (the shipped settings) with each detector's thresholds `factor` times harder to reach."""
    s = base or DetectorSettings()
    return replace(
        s,
        cost_velocity=replace(s.cost_velocity, windows=_windows(s.cost_velocity.windows, factor),
                              price=_price(s.cost_velocity.price, factor)),
        data_access=replace(s.data_access, novel_warn=_count(s.data_access.novel_warn, factor),
                            novel_critical=_count(s.data_access.novel_critical, factor),
                            rows=_windows(s.data_access.rows, factor)),
        error_burst=replace(s.error_burst, warn_tail=s.error_burst.warn_tail ** factor,
                            critical_tail=s.error_burst.critical_tail ** factor,
                            min_errors_warn=_count(s.error_burst.min_errors_warn, factor),
                            min_errors_critical=_count(s.error_burst.min_errors_critical, factor)),
        runaway_loop=replace(s.runaway_loop, warn_repeats=_count(s.runaway_loop.warn_repeats, factor),
                             critical_repeats=_count(s.runaway_loop.critical_repeats, factor),
                             learned_multiple=s.runaway_loop.learned_multiple * factor),
        call_volume=replace(s.call_volume, windows=_windows(s.call_volume.windows, factor)),
    )
