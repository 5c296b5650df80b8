"""Never lose a payment: the durable store-and-forward queue (``saf``), reversals of unknown
outcomes and crashed requests (``reversals``), stand-in advices (``advice``), and refunds a
dead request left holding a reservation (``refund_reservations``)."""
