# Convenience targets; the README's two commands are ./bin/run-bot and ./bin/test.
.PHONY: run test bench lint

run:
	./bin/run-bot

test:
	./bin/test

lint:
	./bin/setup && .venv/bin/ruff check .
