"""The Faust runtime: the same pipeline as the embedded service, partitioned by agent over Kafka topics."""
