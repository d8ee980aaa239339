"""The wasm side of airssys-web: engine, compile cache, instances, pools and generations."""
