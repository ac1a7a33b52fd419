# spanwarden's image for docker-compose.yml: the gateway (`serve --kafka`) and the workers.
FROM python:3.11-slim
WORKDIR /opt/spanwarden
COPY pyproject.toml README.md ./
COPY spanwarden ./spanwarden
COPY collector ./collector
COPY detectors ./detectors
COPY enforcers ./enforcers
COPY dashboards ./dashboards
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/spanwarden spanwarden \
    && mkdir -p /var/lib/spanwarden && chown spanwarden /var/lib/spanwarden
USER spanwarden
ENV SPANWARDEN_STATE_DIR=/var/lib/spanwarden
ENTRYPOINT ["spanwarden"]
