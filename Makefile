# Convenience targets; the README's two commands are ./bin/run-bot and ./bin/test.
.PHONY: run test bench lint

run:
	./bin/run-bot

test:
	./bin/test

bench:
	./bin/setup && ./bin/train && .venv/bin/python -m bench.run --rounds 3

lint:
	./bin/setup && .venv/bin/ruff check .
