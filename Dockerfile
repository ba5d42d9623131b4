# Keelwatch image: API, workers, beat, migrations and the MLflow server all run from it.
#   docker build -t keelwatch .                       # CPU image
#   docker build --build-arg EXTRAS=gpu -t keelwatch:gpu .   # with torch for the gpu queue

FROM python:3.11-slim AS build
WORKDIR /src
# Only what the wheel is built from; tests, docs and benchmarks stay out of the image.
COPY pyproject.toml README.md ./
COPY platform platform
COPY workers workers
COPY migrations migrations
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KEELWATCH_DATA_DIR=/var/lib/keelwatch/data \
    KEELWATCH_API__HOST=0.0.0.0
RUN groupadd --system --gid 10001 keelwatch \
    && useradd --system --uid 10001 --gid keelwatch --home-dir /var/lib/keelwatch \
       --create-home --shell /usr/sbin/nologin keelwatch
COPY --from=build /wheels /wheels
# The same pins as `make venv` and CI (torch, for EXTRAS=gpu, is deliberately not in the lock).
COPY requirements/lock.txt /wheels/lock.txt
# One layer: install and drop the wheel so it is not kept twice.
RUN wheel="$(ls /wheels/keelwatch-*.whl)" \
    && pip install -c /wheels/lock.txt "${wheel}${EXTRAS:+[$EXTRAS]}" \
    && rm -rf /wheels
USER keelwatch
WORKDIR /var/lib/keelwatch
# Named volumes mounted here inherit the keelwatch owner from these folders
RUN mkdir -p /var/lib/keelwatch/data /var/lib/keelwatch/shared /var/lib/keelwatch/mlartifacts
EXPOSE 8000 5000 9100
ENTRYPOINT ["keelwatch"]
CMD ["api"]
