"""What the switch and the acquirers agree on for clearing and settlement: the clearing file
format (``clearing``), the settlement report format (``report``) and the fee rules (``fees``)."""
