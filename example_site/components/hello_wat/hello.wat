;; The /wasm/hello route: a component hand-written in WebAssembly text, the smallest and fastest kind.
;;
;; It exports airssys:web/handler@0.1.0. The request arrives as ten i32s (method, path, query, headers, body:
;; a pointer and a length each); `handle` answers with a pointer to the response record in its memory:
;; u16 status at +0, headers pointer/length at +4/+8 (each header: name ptr/len, value ptr/len = 16 bytes),
;; body pointer/length at +12/+16. The host writes the request through `realloc`, a bump allocator that is
;; reset on every call, so the instance can serve forever.
(component
  (core module $m
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    (func (export "realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
      (result i32)
      (local $p i32) (local $end i32) (local $have i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $p) (local.get $size)))
      (local.set $have (i32.shl (memory.size) (i32.const 16)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then
          (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                                        (i32.const 65535)) (i32.const 16)))
                      (i32.const -1))
            (then unreachable))))
      (global.set $heap (local.get $end))
      (local.get $p))
    (data (i32.const 16) "content-type")                ;; 12 bytes
    (data (i32.const 32) "text/plain; charset=utf-8")   ;; 25 bytes
    (data (i32.const 64) "Hello from a WebAssembly component written by hand in WAT.\n")  ;; 59 bytes
    ;; the header list: one (name ptr, name len, value ptr, value len)
    (data (i32.const 128) "\10\00\00\00\0c\00\00\00\20\00\00\00\19\00\00\00")
    ;; the response record: status 200, headers (128, 1), body (64, 59)
    (data (i32.const 256) "\c8\00\00\00\80\00\00\00\01\00\00\00\40\00\00\00\3b\00\00\00")
    (func (export "handle") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
      (global.set $heap (i32.const 1024))
      (i32.const 256))
  )
  (core instance $i (instantiate $m))
  (type $headers (list (tuple string string)))
  (type $request' (record (field "method" string) (field "path" string) (field "query" string)
    (field "headers" $headers) (field "body" (list u8))))
  (type $response' (record (field "status" u16) (field "headers" $headers) (field "body" (list u8))))
  (func $handle (param "req" $request') (result $response')
    (canon lift (core func $i "handle") (memory (core memory $i "memory")) (realloc (core func $i "realloc"))))
  (component $H
    (import "request-in" (type $r (eq $request')))
    (import "response-in" (type $s (eq $response')))
    (import "f" (func $f (param "req" $r) (result $s)))
    (export $re "request" (type $r))
    (export $se "response" (type $s))
    (export "handle" (func $f) (func (param "req" $re) (result $se))))
  (instance $hi (instantiate $H (with "request-in" (type $request')) (with "response-in" (type $response'))
    (with "f" (func $handle))))
  (export "airssys:web/handler@0.1.0" (instance $hi))
)
