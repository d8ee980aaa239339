;; A valid component that exports some other interface (acme:thing/other@1.0.0) and no airssys:web handler.
(component
  (core module $m
    (func (export "ping") (result i32) (i32.const 42)))
  (core instance $i (instantiate $m))
  (func $ping (result u32) (canon lift (core func $i "ping")))
  (instance $other (export "ping" (func $ping)))
  (export "acme:thing/other@1.0.0" (instance $other))
)
