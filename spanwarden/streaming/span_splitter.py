"""The first stage: spans-topic messages (OTLP protobuf) → normalised records grouped by agent, cut into
records messages small enough for the broker. Malformed messages are counted and logged, never fatal."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import NamedTuple

from spanwarden.collector.normalize import NO_USAGE, Normalizer
from spanwarden.collector.otlp_decode import PROTOBUF, OtlpError, decode_request
from spanwarden.collector.span_record import SpanRecord
from spanwarden.collector.trace_stage import TraceStage
from spanwarden.streaming.record_batch import SourceRecords

log = logging.getLogger(__name__)
MAX_TOLD = 10_000  # agents named in the no-usage warning; past this, only the count
MAX_RECORDS_PER_PART = 2000  # about 600 KB of records: under the broker's default 1 MB message limit


class SpansMessage(NamedTuple):
    partition: int
    offset: int
    value: bytes
    timestamp_s: float = 0.0  # the message's broker timestamp: when the spans were received (replays keep it)


class SpanSplitter:
    def __init__(self, normalizer: Normalizer, max_message_bytes: int = 16 * 1024 * 1024,
                 max_records_per_part: int = MAX_RECORDS_PER_PART, stamp_received: bool = True) -> None:
        self.normalizer = normalizer
        self.stamp_received = stamp_received  # off only to replay recorded spans (SPANWARDEN_TRUST_SPAN_TIME)
        self.stage = TraceStage()  # one cost per LLM call, agents from the trace (no clock: nothing held)
        self.max_message_bytes = max_message_bytes
        self.max_records_per_part = max_records_per_part
        self.malformed = 0
        self.spans = 0
        self._told_no_usage: set[str] = set()

    def _no_usage(self, agent_id: str) -> None:
        """Say once per agent (bounded) that its LLM spans report no usage: an unknown convention would
        otherwise cost $0 silently. The count per agent is `stage.without_usage` and Datadog's
        spanwarden.llm_spans_without_usage."""
        if agent_id in self._told_no_usage or len(self._told_no_usage) >= MAX_TOLD:
            return
        self._told_no_usage.add(agent_id)
        log.warning("agent %s sends LLM spans without token usage or cost (an instrumentation spanwarden does "
                    "not read?); they are counted as spanwarden.llm_spans_without_usage", agent_id)

    def split(self, messages: list[SpansMessage]) -> dict[str, list[SourceRecords]]:
        """Each agent's records from these messages, in order, with their source positions."""
        by_agent: dict[str, list[SourceRecords]] = defaultdict(list)
        for message in messages:
            try:
                request = decode_request(message.value, PROTOBUF, "", self.max_message_bytes)
            except OtlpError as exc:
                self.malformed += 1
                log.error("skipped spans message %d@%d: %s", message.offset, message.partition, exc)
                continue
            grouped: dict[str, list[SpanRecord]] = {}
            records = self.stage.process(self.normalizer.iter_records(request))
            if message.timestamp_s > 0 and self.stamp_received:
                records = _stamped(records, message.timestamp_s)
            for record in records:
                if record.flags and NO_USAGE in record.flags:
                    self._no_usage(record.agent_id)
                same = grouped.get(record.agent_id)
                if same is None:
                    grouped[record.agent_id] = [record]
                else:
                    same.append(record)
            for agent_id, records in grouped.items():
                self.spans += len(records)
                size = self.max_records_per_part
                for part, start in enumerate(range(0, len(records), size)):
                    by_agent[agent_id].append(
                        SourceRecords(message.partition, message.offset, part, records[start:start + size]))
        return by_agent


_RECEIVED = SpanRecord._fields.index("received_s")


def _stamped(records: list[SpanRecord], received_s: float) -> list[SpanRecord]:
    """The records with `received_s` set: `_replace` of one field without its keyword machinery."""
    new, cut, stamp = tuple.__new__, _RECEIVED, (received_s,)
    return [new(SpanRecord, r[:cut] + stamp + r[cut + 1:]) for r in records]  # type: ignore[misc]


def pack(sources: list[SourceRecords], max_records: int = MAX_RECORDS_PER_PART) -> list[list[SourceRecords]]:
    """Group one agent's sources into records messages of at most `max_records` records each."""
    messages: list[list[SourceRecords]] = []
    current: list[SourceRecords] = []
    count = 0
    for source in sources:
        if current and count + len(source.records) > max_records:
            messages.append(current)
            current, count = [], 0
        current.append(source)
        count += len(source.records)
    if current:
        messages.append(current)
    return messages
