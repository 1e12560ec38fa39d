-- Several upstreams at once (docs/routing.md): each provider's stock as its price list says, and
-- each provider's breaker shared by every process through the database.

-- How many numbers the provider said it had at the last `services sync`; null when it does not say.
ALTER TABLE services ADD COLUMN stock integer CHECK (stock IS NULL OR stock >= 0);

-- A breaker opened in one process: the others refuse that provider too until open_until, so a dead
-- upstream is not hammered by every process. Written on a state change, read at most about once a second.
CREATE TABLE provider_breakers (
  provider text PRIMARY KEY,
  state text NOT NULL CHECK (state IN ('open', 'closed')),
  open_until timestamptz,
  changed_at timestamptz NOT NULL,
  changed_by text NOT NULL,
  CONSTRAINT provider_breakers_open_until CHECK ((state = 'open') = (open_until IS NOT NULL))
);
