"""The Prometheus exposition of the API's metrics (pure)."""

from __future__ import annotations

import re

from diffusion_copilot.server.api.metrics import ApiMetrics

SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? -?[0-9.e+]+$')


def test_exposition_is_well_formed_and_histograms_are_cumulative() -> None:
    metrics = ApiMetrics()
    for seconds in (0.003, 0.2, 0.2, 7.0, 100.0):
        metrics.request_done("/v1/code/completions", 200, seconds)
    metrics.request_done("/v1/completions", 429, 0.001)
    metrics.engine_done(0.2, 12)
    metrics.cancelled("client_disconnected")
    metrics.in_flight = 3
    text = metrics.render()
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert {"diffusion_copilot_api_request_duration_seconds", "diffusion_copilot_api_queue_depth",
            "diffusion_copilot_api_steps_per_request", "diffusion_copilot_api_cancellations_total"} <= families
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert all(SAMPLE.match(line) for line in samples), [s for s in samples if not SAMPLE.match(s)]
    code = [float(s.split()[-1]) for s in samples
            if s.startswith('diffusion_copilot_api_request_duration_seconds_bucket{endpoint="/v1/code/completions"')]
    assert code == sorted(code) and code[-1] == 5  # cumulative, +Inf holds every observation
    assert 'diffusion_copilot_api_requests_total{endpoint="/v1/completions",status="429"} 1' in samples
    assert "diffusion_copilot_api_queue_depth 3" in samples
    assert 'diffusion_copilot_api_cancellations_total{reason="client_disconnected"} 1' in samples
    assert 'diffusion_copilot_api_steps_per_request_bucket{le="12.0"} 1' in samples
