-- A small CRUD database: customers and their orders. Loads into SQLite
-- (sqlite3 shop.db < shop.sql) and PostgreSQL (psql -f shop.sql).
CREATE TABLE customers (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    email      TEXT,
    country    TEXT,
    vip        INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE orders (
    id          INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers (id),
    status      TEXT NOT NULL,
    total_cents INTEGER NOT NULL,
    placed_at   TEXT NOT NULL
);

INSERT INTO customers (id, name, email, country, vip) VALUES
    (1, 'Ann Archer',   ' Ann@Example.com ', 'DE', 1),
    (2, 'Bob Baker',    'bob@example.com',   'FR', 0),
    (3, 'Cleo Carter',  'cleo@example.com',  'DE', 0),
    (4, 'Dan Duval',    NULL,                'BE', 0),
    (5, 'Eve Evans',    'eve@example.com',   'NL', 1);

INSERT INTO orders (id, customer_id, status, total_cents, placed_at) VALUES
    (101, 1, 'shipped',   4990, '2026-01-03T10:15:00Z'),
    (102, 1, 'delivered', 1250, '2026-01-09T08:00:00Z'),
    (103, 2, 'open',      9900, '2026-02-01T17:45:00Z'),
    (104, 3, 'cancelled',  300, '2026-02-02T09:30:00Z'),
    (105, 5, 'shipped',  15800, '2026-02-14T12:00:00Z'),
    (106, 5, 'open',      2400, '2026-02-20T19:05:00Z');
