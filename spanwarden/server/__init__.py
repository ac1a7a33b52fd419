"""The server layer both runtimes stand on (`serve` and `serve --kafka`): the state directory's lock and the
listening socket (`claim`), and the one HTTP app (`app.build`) — the route table with each route's role
(`routes`), the auth middleware (`auth`), the durability rules (`durability`), `/healthz` and `/metrics`
(`service_routes`, `self_metrics`), supervised background tasks (`supervisor`) and the handlers both
runtimes share (commands, approvals, access requests, leases). A runtime supplies `runtime.Runtime`."""
