"""Dynamixel Protocol 2.0 servos: the wire codec and control tables (``protocol``) and the bus on ROBOTIS' SDK (``bus``)."""
