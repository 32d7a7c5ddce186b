# The verbs people look for. `make run` starts the engine on embedded defaults with the demo twin;
# `make test` runs every test (it needs PostgreSQL on 127.0.0.1:5432, see README).

.PHONY: run chat test lint fmt bench build

run:
	cargo run -p twin-api -- serve --demo

chat:
	cargo run -p twin-api -- chat --creator demo

test:
	cargo nextest run --workspace --locked

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

fmt:
	cargo fmt --all

bench:
	cargo build --release -p twin-api -p twin-bench
	target/release/twin-bench all --json bench-results.json
	cargo bench -p twin-bench

build:
	cargo build --release -p twin-api
