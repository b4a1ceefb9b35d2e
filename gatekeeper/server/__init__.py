"""The public listener's HTTP server edge: the protocol uvicorn runs and the bounds it keeps."""
