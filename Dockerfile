FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY prsm_events ./prsm_events
COPY streams ./streams
RUN pip install --no-cache-dir ".[rocksdb]"
ENV PRSM_HOME=/data
VOLUME /data
EXPOSE 6066
CMD ["prsm", "worker"]
