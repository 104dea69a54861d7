namespace sx {}
