//! Scrape-time merge, exposition and the HTTP server.
