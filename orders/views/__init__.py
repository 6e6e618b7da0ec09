"""The review console: a live queue of orders awaiting approval and a page per order.

Views are thin: they check who asks, then call selectors to read and `orders.actions` to act.
Each page has its module; `common` holds what they share.
"""

from orders.actions import BULK_LIMIT
from orders.views.order import order_action, order_detail, order_note
from orders.views.people import person, team
from orders.views.queue import bulk, queue

__all__ = ["BULK_LIMIT", "bulk", "order_action", "order_detail", "order_note", "person", "queue", "team"]
