# Frost's image: the CLI (serve, ingest, materialize, quality), the example repo and the
# Airflow DAGs. Java 17 is included for Spark (local[*], or a cluster via --spark-master).
FROM python:3.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/frost
# Dependencies first, pinned by constraints.txt, so code changes rebuild only the last layers.
COPY pyproject.toml constraints.txt README.md ./
COPY frost/__init__.py frost/__init__.py
RUN pip install --no-cache-dir -c constraints.txt pip setuptools wheel \
    && pip install --no-cache-dir -c constraints.txt '.[spark,stream,serve,quality,airflow]' \
    && pip uninstall -y frost

COPY frost frost
COPY pipelines pipelines
COPY serving serving
RUN pip install --no-cache-dir --no-deps -c constraints.txt .

COPY feature_repo /repo
COPY dags /opt/frost/dags

ENV FROST_REPO=/repo \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/frost/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    PYTHONUNBUFFERED=1
# gRPC, metrics
EXPOSE 6566 9100
ENTRYPOINT ["frost"]
CMD ["--help"]
