"""The key-injection facility (KIF): its device register and ``payswitch-kif``."""
