"""peergym environments: scenarios, the Docker sandbox, observers and the Gymnasium env."""
