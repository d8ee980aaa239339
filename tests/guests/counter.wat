;; Counts its calls in a global and answers the count in decimal: 1, 2, 3... when its instance is reused, always
;; 1 when every request gets a fresh instance (request isolation).
(component
  (core module $m
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    (global $calls (mut i32) (i32.const 0))
    ;; the decimal digits of $n written backwards from offset 95; returns the first digit's offset
    (func $digits (param $n i32) (result i32)
      (local $p i32)
      (local.set $p (i32.const 96))
      (loop $more
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
        (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
        (br_if $more (local.get $n)))
      (local.get $p))
    (func $alloc (param $align i32) (param $size i32) (result i32)
      (local $p i32) (local $end i32) (local $have i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $p) (local.get $size)))
      (if (i32.lt_u (local.get $end) (local.get $p)) (then unreachable))
      (local.set $have (i32.shl (memory.size) (i32.const 16)))
      (if (i32.gt_u (local.get $end) (local.get $have))
        (then
          (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have))
                                                        (i32.const 65535)) (i32.const 16)))
                      (i32.const -1))
            (then unreachable))))
      (global.set $heap (local.get $end))
      (local.get $p))
    (func $reset (global.set $heap (i32.const 1024)))
    (func (export "realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
      (result i32)
      (local $p i32)
      (local.set $p (call $alloc (local.get $align) (local.get $size)))
      (if (local.get $old)
        (then (memory.copy (local.get $p) (local.get $old)
          (select (local.get $old_size) (local.get $size) (i32.lt_u (local.get $old_size) (local.get $size))))))
      (local.get $p))
    (data (i32.const 16) "content-type")       ;; 12 bytes
    (data (i32.const 32) "text/plain; charset=utf-8")  ;; 25 bytes
    ;; the header table: one tuple<string, string> = name ptr/len, value ptr/len
    (data (i32.const 96) "\10\00\00\00\0c\00\00\00\20\00\00\00\19\00\00\00")
    (func (export "handle") (param $method i32) (param $method_len i32) (param $path i32) (param $path_len i32)
        (param $query i32) (param $query_len i32) (param $headers i32) (param $headers_len i32)
        (param $body i32) (param $body_len i32) (result i32)
      (local $start i32)
      (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
      (local.set $start (call $digits (global.get $calls)))
      (i32.store16 (i32.const 128) (i32.const 200))
      (i32.store (i32.const 132) (i32.const 96))   ;; headers ptr
      (i32.store (i32.const 136) (i32.const 1))    ;; headers len
      (i32.store (i32.const 140) (local.get $start))                        ;; body ptr
      (i32.store (i32.const 144) (i32.sub (i32.const 96) (local.get $start)))  ;; body len
      (call $reset)
      (i32.const 128))
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
