"""Training: optimizers (``optim``), learning-rate schedules (``schedule``), gradient
clipping (``clip``), the training loop (``loop``) and its recorded history (``history``)."""
