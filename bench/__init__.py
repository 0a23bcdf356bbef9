"""Benchmarks of oidc-link; docs/performance.md holds the results.

``python -m bench.run`` (against node-oidc-provider), ``bench.profile`` (py-spy under load),
``bench.in_process`` (the app alone), ``bench.redis_round_trips``, ``bench/server_choice.py``;
``bench.sizing`` (what one Redis primary carries) feeds docs/operations.md "Sizing".
"""
