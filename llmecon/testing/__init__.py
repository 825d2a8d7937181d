"""Test helpers that ship with llmecon, for its own tests and for plug-in authors.

* :mod:`llmecon.testing.fake_servers`: fake OpenAI-compatible and Anthropic Messages
  servers (aiohttp, 127.0.0.1, scripted faults) for tests and benchmarks.
* :mod:`llmecon.testing.conformance`: checks that one registered planner, provider,
  worker pool, social welfare function or vote rule behaves (seeded determinism,
  bounds, schema-valid replies); ``docs/testing.md`` shows how to run them on a plug-in.

Nothing is imported here: importing a submodule costs only what it needs.
"""
