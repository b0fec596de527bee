DROP TABLE token_requests;
