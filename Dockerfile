# Build: docker build -t shardgate .   (or: docker compose up --build)
FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release && cp target/release/shardgate /shardgate

FROM debian:bookworm-slim
RUN useradd --system --no-create-home --shell /usr/sbin/nologin shardgate
COPY --from=builder /shardgate /usr/local/bin/shardgate
USER shardgate
EXPOSE 6432
ENTRYPOINT ["shardgate"]
CMD ["--config", "/etc/shardgate/shardgate.toml"]
