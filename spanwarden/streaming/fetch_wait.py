"""Faust's Kafka transport with a configurable fetch wait.

Faust builds its consumer with `fetch_max_wait_ms=1500`, fixed. Kafka answers a fetch as soon as any data
is there, so that only bounds idle polling; but brokers that hold a fetch for its whole wait (Tansu, the
test broker, does) then add up to 1.5 s per hop. A shorter wait costs a few idle fetches per second."""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka


def use_fetch_wait(app: faust.App, fetch_max_wait_ms: int) -> None:
    """Make `app` consume with this fetch wait (call before the worker starts)."""

    class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = fetch_max_wait_ms  # read by AIOKafkaConsumer.start()
            return consumer

    class Consumer(faust_aiokafka.Consumer):
        def _new_consumer_thread(self) -> Any:
            return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    class Transport(faust_aiokafka.Transport):
        pass

    Transport.Consumer = Consumer  # type: ignore[misc]
    app.transport = Transport(app.conf.broker_consumer, app)
