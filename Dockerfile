# spanwarden's image for docker-compose.yml: the gateway (`serve --kafka`) and the workers.
# Stage 1 builds the wheel from the source; stage 2 installs only that wheel (what users install), non-root.
FROM python:3.11-slim AS build
WORKDIR /src
# A C compiler for the wheel's compiled hot path (mypyc, setup.py); the runtime stage needs none.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/* \
    && pip install --no-cache-dir build
ENV SPANWARDEN_COMPILE=1
COPY pyproject.toml setup.py README.md LICENSE ./
COPY spanwarden ./spanwarden
COPY collector ./collector
COPY detectors ./detectors
COPY enforcers ./enforcers
COPY dashboards ./dashboards
RUN python -m build --wheel --outdir /dist .

FROM python:3.11-slim
COPY --from=build /dist /dist
RUN WHEEL="$(ls /dist/*.whl)" && pip install --no-cache-dir "${WHEEL}[server,kafka,datadog]" && rm -rf /dist \
    && useradd --system --home /var/lib/spanwarden spanwarden \
    && mkdir -p /var/lib/spanwarden && chown spanwarden /var/lib/spanwarden
USER spanwarden
WORKDIR /var/lib/spanwarden
ENV SPANWARDEN_STATE_DIR=/var/lib/spanwarden
ENTRYPOINT ["spanwarden"]
