"""The project's tests: unit, integration (local AWS endpoints), e2e (running system), browser."""
