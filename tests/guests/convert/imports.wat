;; Imports guest for the fast host-function tests (tests/test_convert.py): handle(req) calls one airssys:web
;; import, chosen by the method, and reports what it got back:
;;   "@c" config.get(path)     -> some: 200 [("value", s)]         none: 404
;;   "@g" kv.get(path)         -> ok(some b): 200 body=b  ok(none): 404  err(e): 500 [("error", e)]
;;   "@s" kv.set(path, body)   -> ok: 204  err(e): 500 [("error", e)]
;;   "@d" kv.delete(path)      -> ok: 204  err(e): 500 [("error", e)]
;;   anything else: outbound.fetch(method, path, headers, body) -> ok(r): r verbatim  err(e): 502 [("error", e)]
(component
  (import "airssys:web/outbound@0.1.0" (instance $outbound
    (type $h (list (tuple string string)))
    (type $r' (record (field "status" u16) (field "headers" $h) (field "body" (list u8))))
    (export "response" (type $r (eq $r')))
    (export "fetch" (func (param "method" string) (param "url" string) (param "headers" $h)
                          (param "body" (list u8)) (result (result $r (error string)))))))
  (import "airssys:web/config@0.1.0" (instance $config
    (export "get" (func (param "key" string) (result (option string))))))
  (import "airssys:web/kv@0.1.0" (instance $kv
    (export "get" (func (param "key" string) (result (result (option (list u8)) (error string)))))
    (export "set" (func (param "key" string) (param "value" (list u8)) (result (result (error string)))))
    (export "delete" (func (param "key" string) (result (result (error string)))))))

  (core module $libc
    (memory (export "memory") 1)
    (global $heap (export "heap") (mut i32) (i32.const 1024))
    (func (export "realloc") (param $old i32) (param $oldsz i32) (param $align i32) (param $new i32) (result i32)
      (local $p i32) (local $pages i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (global.set $heap (i32.add (local.get $p) (local.get $new)))
      (local.set $pages (i32.sub (i32.shr_u (i32.add (global.get $heap) (i32.const 65535)) (i32.const 16))
                                 (memory.size)))
      (if (i32.gt_s (local.get $pages) (i32.const 0))
        (then (if (i32.eq (memory.grow (local.get $pages)) (i32.const -1)) (then unreachable))))
      (if (local.get $old) (then (memory.copy (local.get $p) (local.get $old) (local.get $oldsz))))
      (local.get $p)))
  (core instance $libc (instantiate $libc))

  (core func $fetch (canon lower (func $outbound "fetch") (memory (core memory $libc "memory"))
                                 (realloc (core func $libc "realloc"))))
  (core func $config_get (canon lower (func $config "get") (memory (core memory $libc "memory"))
                                      (realloc (core func $libc "realloc"))))
  (core func $kv_get (canon lower (func $kv "get") (memory (core memory $libc "memory"))
                                  (realloc (core func $libc "realloc"))))
  (core func $kv_set (canon lower (func $kv "set") (memory (core memory $libc "memory"))
                                  (realloc (core func $libc "realloc"))))
  (core func $kv_delete (canon lower (func $kv "delete") (memory (core memory $libc "memory"))
                                     (realloc (core func $libc "realloc"))))
  (core instance $host
    (export "fetch" (func $fetch)) (export "config-get" (func $config_get)) (export "kv-get" (func $kv_get))
    (export "kv-set" (func $kv_set)) (export "kv-delete" (func $kv_delete)))

  (core module $m
    (import "libc" "memory" (memory 1))
    (import "libc" "heap" (global $heap (mut i32)))
    (import "host" "fetch" (func $fetch (param i32 i32 i32 i32 i32 i32 i32 i32 i32)))
    (import "host" "config-get" (func $config_get (param i32 i32 i32)))
    (import "host" "kv-get" (func $kv_get (param i32 i32 i32)))
    (import "host" "kv-set" (func $kv_set (param i32 i32 i32 i32 i32)))
    (import "host" "kv-delete" (func $kv_delete (param i32 i32 i32)))
    (data (i32.const 16) "valueerror")
    ;; the response record lives at 256; a one-entry header list at 320; import return areas at 384
    (func $respond (param $status i32) (param $hp i32) (param $hl i32) (param $bp i32) (param $bl i32) (result i32)
      (i32.store16 (i32.const 256) (local.get $status))
      (i32.store (i32.const 260) (local.get $hp))
      (i32.store (i32.const 264) (local.get $hl))
      (i32.store (i32.const 268) (local.get $bp))
      (i32.store (i32.const 272) (local.get $bl))
      (i32.const 256))
    (func $with_header (param $status i32) (param $name i32) (param $sp i32) (param $sl i32) (result i32)
      (i32.store (i32.const 320) (local.get $name))
      (i32.store (i32.const 324) (i32.const 5))
      (i32.store (i32.const 328) (local.get $sp))
      (i32.store (i32.const 332) (local.get $sl))
      (call $respond (local.get $status) (i32.const 320) (i32.const 1) (i32.const 0) (i32.const 0)))
    ;; result<_, string> at 384: ok -> 204, err -> 500 with an "error" header
    (func $unit_result (result i32)
      (if (result i32) (i32.load8_u (i32.const 384))
        (then (call $with_header (i32.const 500) (i32.const 21) (i32.load (i32.const 388)) (i32.load (i32.const 392))))
        (else (call $respond (i32.const 204) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))
    (func (export "post-return") (param i32)
      (global.set $heap (i32.const 1024)))
    (func (export "handle") (param $mp i32) (param $ml i32) (param $pp i32) (param $pl i32) (param $qp i32)
      (param $ql i32) (param $hp i32) (param $hl i32) (param $bp i32) (param $bl i32) (result i32)
      (local $op i32)
      (if (i32.and (i32.eq (local.get $ml) (i32.const 2)) (i32.eq (i32.load8_u (local.get $mp)) (i32.const 64)))
        (then (local.set $op (i32.load8_u offset=1 (local.get $mp)))))
      (if (i32.eq (local.get $op) (i32.const 99))  ;; "@c"
        (then
          (call $config_get (local.get $pp) (local.get $pl) (i32.const 384))
          (if (i32.load8_u (i32.const 384))
            (then (return (call $with_header (i32.const 200) (i32.const 16)
                                             (i32.load (i32.const 388)) (i32.load (i32.const 392))))))
          (return (call $respond (i32.const 404) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))
      (if (i32.eq (local.get $op) (i32.const 103))  ;; "@g"
        (then
          (call $kv_get (local.get $pp) (local.get $pl) (i32.const 384))
          (if (i32.load8_u (i32.const 384))
            (then (return (call $with_header (i32.const 500) (i32.const 21)
                                             (i32.load (i32.const 388)) (i32.load (i32.const 392))))))
          (if (i32.load8_u (i32.const 388))
            (then (return (call $respond (i32.const 200) (i32.const 0) (i32.const 0)
                                         (i32.load (i32.const 392)) (i32.load (i32.const 396))))))
          (return (call $respond (i32.const 404) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)))))
      (if (i32.eq (local.get $op) (i32.const 115))  ;; "@s"
        (then
          (call $kv_set (local.get $pp) (local.get $pl) (local.get $bp) (local.get $bl) (i32.const 384))
          (return (call $unit_result))))
      (if (i32.eq (local.get $op) (i32.const 100))  ;; "@d"
        (then
          (call $kv_delete (local.get $pp) (local.get $pl) (i32.const 384))
          (return (call $unit_result))))
      (call $fetch (local.get $mp) (local.get $ml) (local.get $pp) (local.get $pl) (local.get $hp) (local.get $hl)
                   (local.get $bp) (local.get $bl) (i32.const 384))
      (if (i32.load8_u (i32.const 384))
        (then (return (call $with_header (i32.const 502) (i32.const 21)
                                         (i32.load (i32.const 388)) (i32.load (i32.const 392))))))
      (call $respond (i32.load16_u (i32.const 388)) (i32.load (i32.const 392)) (i32.load (i32.const 396))
                     (i32.load (i32.const 400)) (i32.load (i32.const 404)))))
  (core instance $i (instantiate $m (with "libc" (instance $libc)) (with "host" (instance $host))))

  (type $headers (list (tuple string string)))
  (type $request' (record (field "method" string) (field "path" string) (field "query" string)
                          (field "headers" $headers) (field "body" (list u8))))
  (type $response' (record (field "status" u16) (field "headers" $headers) (field "body" (list u8))))
  (func $handle (param "req" $request') (result $response')
    (canon lift (core func $i "handle") (memory (core memory $libc "memory")) (realloc (core func $libc "realloc"))
      (post-return (core func $i "post-return"))))
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
