"""Card security: the one interface through which the switch touches card data
(``protector.CardProtector``: verify the request MAC, open the card, translate the PIN, token
and vault), its PKCS#11 implementation (``hsm``), and the factory that opens it (``factory``)."""
