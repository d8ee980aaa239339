;; A core WebAssembly module, not a component: it must be refused as one.
(module
  (memory (export "memory") 1)
  (func (export "handle") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
    (i32.const 0))
)
