"""The paper's math and networks: noise models and exact M-densities, the networks nu_theta, MDAE/MEM, the walk
and the jump, derived seeds. No I/O and no configuration imports."""
