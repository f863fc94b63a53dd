DROP TABLE login_failures;
DROP TABLE tokens;
DROP TABLE oauth_clients;
DROP TABLE users;
DROP TABLE retailers;
