"""Build the example SQLite database and its questions: src/graft/data/sql/{shop.db,questions.jsonl}.

Deterministic (fixed lists, ``random.Random(0)``), so re-running reproduces the
committed files byte for byte in content. Run: ``python scripts/make_sql_example.py``.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "graft" / "data" / "sql"
SCHEMA = """CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, price REAL NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
                     day TEXT NOT NULL);
CREATE TABLE order_items (order_id INTEGER NOT NULL REFERENCES orders(id),
                          product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL);"""
SCHEMA_LINE = ("customers(id, name, city); products(id, name, category, price); "
               "orders(id, customer_id, day); order_items(order_id, product_id, quantity)")
CUSTOMERS = ["Ada", "Ben", "Cleo", "Dev", "Eva", "Finn", "Gia", "Hugo", "Ines", "Jon", "Kai", "Lea"]
CITIES = ["Lyon", "Oslo", "Porto", "Graz"]
PRODUCTS = [("pen", "office", 1.5), ("notebook", "office", 3.0), ("stapler", "office", 7.25),
            ("mug", "kitchen", 6.0), ("kettle", "kitchen", 24.0), ("spoon", "kitchen", 0.75),
            ("lamp", "home", 18.5), ("rug", "home", 45.0), ("pillow", "home", 12.0), ("clock", "home", 15.0)]
QUESTIONS = [
    ("How many customers are there?", "SELECT COUNT(*) FROM customers"),
    ("List the names of customers who live in Oslo.", "SELECT name FROM customers WHERE city = 'Oslo'"),
    ("How many products are in the kitchen category?", "SELECT COUNT(*) FROM products WHERE category = 'kitchen'"),
    ("What is the name of the most expensive product?", "SELECT name FROM products ORDER BY price DESC LIMIT 1"),
    ("List product names with a price under 5, cheapest first.",
     "SELECT name FROM products WHERE price < 5 ORDER BY price"),
    ("What is the average product price?", "SELECT AVG(price) FROM products"),
    ("How many customers live in each city? Give city and count.",
     "SELECT city, COUNT(*) FROM customers GROUP BY city"),
    ("How many orders were placed in total?", "SELECT COUNT(*) FROM orders"),
    ("How many orders did Ada place?",
     "SELECT COUNT(*) FROM orders JOIN customers ON customers.id = orders.customer_id WHERE customers.name = 'Ada'"),
    ("What is the total quantity of pens sold?",
     ("SELECT SUM(quantity) FROM order_items JOIN products ON products.id = order_items.product_id "
     "WHERE products.name = 'pen'")),
    ("Which categories exist? List each once.", "SELECT DISTINCT category FROM products"),
    ("List the names of customers who never placed an order.",
     "SELECT name FROM customers WHERE id NOT IN (SELECT customer_id FROM orders)"),
    ("What is the total revenue (price times quantity) of all order items?",
     ("SELECT SUM(products.price * order_items.quantity) FROM order_items "
     "JOIN products ON products.id = order_items.product_id")),
    ("For each category, what is the most expensive price? Give category and price.",
     "SELECT category, MAX(price) FROM products GROUP BY category"),
    ("How many distinct products were ever ordered?", "SELECT COUNT(DISTINCT product_id) FROM order_items"),
    ("List the days on which orders were placed, earliest first, each once.",
     "SELECT DISTINCT day FROM orders ORDER BY day"),
    ("Which customer placed the most orders? Give the name.",
     ("SELECT customers.name FROM customers JOIN orders ON orders.customer_id = customers.id "
     "GROUP BY customers.id ORDER BY COUNT(*) DESC, customers.name LIMIT 1")),
    ("How many products cost more than 10?", "SELECT COUNT(*) FROM products WHERE price > 10"),
    ("List the names of products in the home category, alphabetically.",
     "SELECT name FROM products WHERE category = 'home' ORDER BY name"),
    ("What is the total number of items (sum of quantities) in order 1?",
     "SELECT SUM(quantity) FROM order_items WHERE order_id = 1"),
    ("How many customers live in Porto or Graz?",
     "SELECT COUNT(*) FROM customers WHERE city IN ('Porto', 'Graz')"),
    ("List each city with the number of orders placed by its customers.",
     ("SELECT customers.city, COUNT(orders.id) FROM customers JOIN orders ON orders.customer_id = customers.id "
     "GROUP BY customers.city")),
    ("What is the cheapest product in the office category? Give its name.",
     "SELECT name FROM products WHERE category = 'office' ORDER BY price LIMIT 1"),
    ("How many order items have a quantity of at least 3?", "SELECT COUNT(*) FROM order_items WHERE quantity >= 3"),
]


def build(out: Path = OUT) -> None:
    out.mkdir(parents=True, exist_ok=True)
    db = out / "shop.db"
    db.unlink(missing_ok=True)
    rng = random.Random(0)
    conn = sqlite3.connect(db)
    conn.executescript(SCHEMA)
    conn.executemany("INSERT INTO customers VALUES (?, ?, ?)",
                     [(i + 1, name, CITIES[i % len(CITIES)]) for i, name in enumerate(CUSTOMERS)])
    conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?)",
                     [(i + 1, *p) for i, p in enumerate(PRODUCTS)])
    orders, items = [], []
    for order_id in range(1, 31):
        customer = rng.randint(1, len(CUSTOMERS) - 2)  # the last two customers never order
        orders.append((order_id, customer, f"2024-03-{rng.randint(1, 28):02d}"))
        for product in rng.sample(range(1, len(PRODUCTS) + 1), rng.randint(1, 3)):
            items.append((order_id, product, rng.randint(1, 4)))
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", orders)
    conn.executemany("INSERT INTO order_items VALUES (?, ?, ?)", items)
    conn.commit()
    for question, query in QUESTIONS:
        conn.execute(query).fetchall()  # every reference query must run
    conn.execute("VACUUM")
    conn.close()
    with open(out / "questions.jsonl", "w") as fh:
        for i, (question, query) in enumerate(QUESTIONS):
            row = {"id": f"sql-{i}", "question": question, "schema": SCHEMA_LINE, "query": query,
                   "db": "shop.db", "demonstration": f"```sql\n{query}\n```"}
            fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    build()
    print(f"wrote {OUT}/shop.db and questions.jsonl")
