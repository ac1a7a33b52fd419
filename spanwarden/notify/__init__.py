"""Telling people at once: what waits for a human (tool approvals, access requests), halts and budget
warnings, sent to Slack, PagerDuty and signed generic webhooks, with retries, a bounded queue and the
failures counted. Notices are made from audit entries, so both runtimes notify alike from what they audit."""
