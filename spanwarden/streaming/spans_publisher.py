"""The receiver's delivery in the Kafka runtime: each valid OTLP request goes to the spans topic as OTLP
protobuf (what the Collector's Kafka exporter writes), keyed by its first resource's service.name so one
agent's requests keep their order. The request is answered only once the broker has it."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from spanwarden.collector.receiver import DeliveryFailed
from spanwarden.streaming.topics import SPANS


class SpansPublisher:
    def __init__(self, producer: AIOKafkaProducer, topic: str = SPANS) -> None:
        self.producer = producer
        self.topic = topic
        self.published = 0

    async def __call__(self, request: ExportTraceServiceRequest) -> None:
        try:
            await self.producer.send_and_wait(self.topic, request.SerializeToString(), key=_service_name(request))
        except KafkaError as exc:
            raise DeliveryFailed(f"the Kafka broker did not take the spans ({type(exc).__name__}: {exc})") from exc
        self.published += 1


def _service_name(request: ExportTraceServiceRequest) -> bytes | None:
    for resource_spans in request.resource_spans:
        for kv in resource_spans.resource.attributes:
            if kv.key == "service.name":
                return kv.value.string_value.encode()
    return None
