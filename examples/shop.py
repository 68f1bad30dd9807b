#!/usr/bin/env python3
"""A small demo shop for ngx_crm: the upstream that `./config.sh demo` puts
behind nginx.  Python 3 standard library only.

    python3 examples/shop.py PORT        # listens on 127.0.0.1:PORT

Pages (HTML, each a whole <html>...</body></html> so that nginx can put the
customer's banner before </body>):
    GET  /                 the home page: three products
    GET  /product/<id>     one product
    GET  /account          the customer's account page

JSON endpoints (a JSON body, or an application/x-www-form-urlencoded one
with dotted names such as customer.email=...):
    POST /api/orders         {"order_id":"D-1","customer":{"email":..,"name":..,"phone":..},"total":100.00}
                             -> 201 {"order_id","total","discount_percent","charged","gift","tier","card"}
                             total <= 0 (or missing) -> 422 {"error": ...}: the shop refuses the order
    POST /api/payments       {"order_id":..,"total":..}          -> 200 {"order_id","paid":true}
    POST /api/orders/status  {"order_id":..,"status":..,"eta":..} -> 200 {"order_id","status","eta"}

The shop knows nothing about customers, cards or discounts: it takes the
decisions from the headers nginx sets (X-CRM-Discount, X-CRM-Tier,
X-CRM-Card, X-CRM-Gift, X-CRM-Promise).  It can trust them because the
module removes any X-CRM-* header a client sends.  Orders are kept in
memory only; one line per request goes to stderr.
"""

import html
import json
import sys
import threading
import urllib.parse
from decimal import Decimal, InvalidOperation, ROUND_HALF_UP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PRODUCTS = {
    "1": {"name": "Espresso beans, 1 kg", "price": "24.90",
          "text": "Dark roast from a small roaster in Trieste."},
    "2": {"name": "Hand grinder", "price": "59.00",
          "text": "Ceramic burrs, fifteen settings, no electricity."},
    "3": {"name": "Stovetop moka pot", "price": "35.50",
          "text": "Six cups, aluminium, the classic."},
}

STATUSES = ("shipped", "delayed", "delivered", "cancelled", "refunded")

ORDERS = {}
LOCK = threading.Lock()

CENT = Decimal("0.01")


def page(title, body):
    t = html.escape(title)
    return (
        "<!DOCTYPE html>\n"
        "<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{t} - Demo Coffee Shop</title>\n"
        "<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}"
        "nav a{margin-right:1em}</style>\n"
        "</head>\n<body>\n"
        "<nav><a href=\"/\">Shop</a><a href=\"/account\">My account</a></nav>\n"
        f"<h1>{t}</h1>\n{body}\n"
        "</body>\n</html>\n"
    )


def parse_body(handler):
    """Returns the request body as a dict (JSON or form), or None."""
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length > 0 else b""
    ctype = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        try:
            pairs = urllib.parse.parse_qsl(raw.decode("utf-8"),
                                           keep_blank_values=True)
        except UnicodeDecodeError:
            return None
        data = {}
        for key, value in pairs:
            node = data
            parts = key.split(".")
            for part in parts[:-1]:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
            node[parts[-1]] = value
        return data
    try:
        data = json.loads(raw.decode("utf-8") or "null")
    except (UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def money(value):
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not d.is_finite():
        return None
    return d.quantize(CENT, rounding=ROUND_HALF_UP)


def header_int(handler, name):
    value = (handler.headers.get(name) or "").strip()
    if not value.isdigit():
        return 0
    return min(int(value), 100)


class Shop(BaseHTTPRequestHandler):
    server_version = "DemoShop/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("shop: %s %s\n" % (self.address_string(), fmt % args))

    def send(self, code, body, ctype):
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, code, obj):
        self.send(code, json.dumps(obj) + "\n", "application/json")

    def send_html(self, code, title, body):
        self.send(code, page(title, body), "text/html; charset=utf-8")

    # pages

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/":
            items = "\n".join(
                f"<li><a href=\"/product/{pid}\">{html.escape(p['name'])}</a>"
                f" - {p['price']} EUR</li>"
                for pid, p in PRODUCTS.items())
            self.send_html(200, "Welcome",
                           "<p>Good coffee, sent the same day.</p>\n"
                           f"<ul>\n{items}\n</ul>")
        elif path.startswith("/product/") and path[9:] in PRODUCTS:
            p = PRODUCTS[path[9:]]
            self.send_html(200, p["name"],
                           f"<p>{html.escape(p['text'])}</p>\n"
                           f"<p><b>{p['price']} EUR</b></p>")
        elif path == "/account":
            with LOCK:
                n = len(ORDERS)
            self.send_html(200, "My account",
                           "<p>Your orders, your loyalty card and your "
                           "discounts live here.</p>\n"
                           f"<p>The shop has taken {n} order(s) since it "
                           "started.</p>")
        elif path.startswith("/api/"):
            self.send_json(405, {"error": "use POST"})
        else:
            self.send_html(404, "Not found", "<p>No such page.</p>")

    # JSON endpoints

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        handlers = {
            "/api/orders": self.order,
            "/api/payments": self.payment,
            "/api/orders/status": self.status,
        }
        handler = handlers.get(path)
        body = parse_body(self)
        if handler is None:
            self.send_json(404, {"error": "no such endpoint"})
        elif body is None:
            self.send_json(400, {"error": "send a JSON object or a form"})
        else:
            handler(body)

    def order(self, body):
        order_id = str(body.get("order_id") or "").strip()
        total = money(body.get("total"))
        if not order_id:
            self.send_json(422, {"error": "order_id is missing"})
            return
        if total is None or total <= 0:
            self.send_json(422, {"error": "the total must be a positive amount"})
            return
        discount = header_int(self, "X-CRM-Discount")
        charged = (total * (100 - discount) / 100).quantize(
            CENT, rounding=ROUND_HALF_UP)
        answer = {
            "order_id": order_id,
            "total": float(total),
            "discount_percent": discount,
            "charged": float(charged),
            "gift": self.headers.get("X-CRM-Gift") or "",
            "tier": self.headers.get("X-CRM-Tier") or "",
            "card": self.headers.get("X-CRM-Card") or "",
        }
        with LOCK:
            ORDERS[order_id] = dict(answer, customer=body.get("customer"),
                                    promise=self.headers.get("X-CRM-Promise") or "",
                                    paid=False, status="new")
        self.send_json(201, answer)

    def payment(self, body):
        order_id = str(body.get("order_id") or "").strip()
        if not order_id:
            self.send_json(422, {"error": "order_id is missing"})
            return
        with LOCK:
            if order_id in ORDERS:
                ORDERS[order_id]["paid"] = True
        self.send_json(200, {"order_id": order_id, "paid": True})

    def status(self, body):
        order_id = str(body.get("order_id") or "").strip()
        status = str(body.get("status") or "").strip()
        if not order_id:
            self.send_json(422, {"error": "order_id is missing"})
            return
        if status not in STATUSES:
            self.send_json(422, {"error": "status must be one of "
                                          + ", ".join(STATUSES)})
            return
        eta = body.get("eta")
        with LOCK:
            if order_id in ORDERS:
                ORDERS[order_id]["status"] = status
        answer = {"order_id": order_id, "status": status}
        if eta:
            answer["eta"] = eta
        self.send_json(200, answer)


def main():
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.stderr.write("usage: shop.py PORT\n")
        return 2
    port = int(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Shop)
    server.daemon_threads = True
    sys.stderr.write(f"shop: listening on http://127.0.0.1:{port}/\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
