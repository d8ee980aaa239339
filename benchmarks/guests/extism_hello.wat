;; The P7 comparison plugin: an Extism plugin (a core module against Extism's kernel ABI, "extism:host/env")
;; whose `handle` export answers "Hello, world!\n", the same body as the airssys-web hello guest. Written in WAT
;; because no Extism PDK toolchain is available offline; the ABI is the one the Extism runtime (extism-sys)
;; provides to every plugin: alloc an output block in Extism memory, store the bytes, output_set, return 0.
(module
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u64" (func $store_u64 (param i64 i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "Hello, world!\0a")
  (func (export "handle") (result i32)
    (local $out i64) (local $i i32)
    (local.set $out (call $alloc (i64.const 14)))
    (call $store_u64 (local.get $out) (i64.load (i32.const 0)))
    (local.set $i (i32.const 8))
    (block $done
      (loop $copy
        (br_if $done (i32.ge_u (local.get $i) (i32.const 14)))
        (call $store_u8 (i64.add (local.get $out) (i64.extend_i32_u (local.get $i)))
                        (i32.load8_u (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $copy)))
    (call $output_set (local.get $out) (i64.const 14))
    (i32.const 0)))
