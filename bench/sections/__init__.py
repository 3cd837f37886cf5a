"""The benchmark's sections: each a function of the run's Context returning its figures."""
