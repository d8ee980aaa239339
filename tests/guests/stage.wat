;; A middleware stage (the airssys:web/middleware world: it imports the handler it passes requests on to).
;; Configured by its version's config:
;;   "name"    - its name (default "stage");
;;   "require" - a header name the request must carry, else it answers 401 "unauthorized by NAME" itself and
;;               the next stage is never called;
;;   "trap"    - present: it traps instead of passing the request on.
;; Otherwise it appends ("x-stages", NAME) to the request's headers, calls the next handler with that request,
;; and appends ("x-seen-by", NAME) to the response's headers on the way back.
(component
  (import "airssys:web/config@0.1.1" (instance $config
    (export "get" (func (param "key" string) (result (option string))))))
  (import "airssys:web/handler@0.1.1" (instance $next
    (type $h (list (tuple string string)))
    (type $q' (record (field "method" string) (field "path" string) (field "query" string) (field "headers" $h)
                      (field "body" (list u8))))
    (export "request" (type $q (eq $q')))
    (type $r' (record (field "status" u16) (field "headers" $h) (field "body" (list u8))))
    (export "response" (type $r (eq $r')))
    (export "handle" (func (param "req" $q) (result $r)))))

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
  (core func $config_get (canon lower (func $config "get") (memory (core memory $libc "memory"))
                                      (realloc (core func $libc "realloc"))))
  (core func $next (canon lower (func $next "handle") (memory (core memory $libc "memory"))
                                (realloc (core func $libc "realloc"))))
  (core instance $host (export "config-get" (func $config_get)) (export "next" (func $next)))

  (core module $m
    (import "libc" "memory" (memory 1))
    (import "libc" "heap" (global $heap (mut i32)))
    (import "libc" "realloc" (func $realloc (param i32 i32 i32 i32) (result i32)))
    (import "host" "config-get" (func $config_get (param i32 i32 i32)))
    (import "host" "next" (func $next (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
    (data (i32.const 16) "name")           ;; 4
    (data (i32.const 24) "require")        ;; 7
    (data (i32.const 32) "trap")           ;; 4
    (data (i32.const 40) "x-stages")       ;; 8
    (data (i32.const 48) "x-seen-by")      ;; 9
    (data (i32.const 64) "stage")          ;; 5
    (data (i32.const 72) "unauthorized by ")  ;; 16
    ;; 128: config.get return area (tag, ptr, len); 256: the response record; 512: next's return area
    (func $config (param $key i32) (param $len i32) (param $out i32) (result i32)
      ;; 1 and the string at (out, out+4) if the key is set, else 0
      (call $config_get (local.get $key) (local.get $len) (i32.const 128))
      (if (i32.eqz (i32.load8_u (i32.const 128))) (then (return (i32.const 0))))
      (i32.store (local.get $out) (i32.load (i32.const 132)))
      (i32.store offset=4 (local.get $out) (i32.load (i32.const 136)))
      (i32.const 1))
    (func $eq (param $a i32) (param $al i32) (param $b i32) (param $bl i32) (result i32)
      (local $i i32)
      (if (i32.ne (local.get $al) (local.get $bl)) (then (return (i32.const 0))))
      (block $done
        (loop $more
          (br_if $done (i32.ge_u (local.get $i) (local.get $al)))
          (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                      (i32.load8_u (i32.add (local.get $b) (local.get $i))))
            (then (return (i32.const 0))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $more)))
      (i32.const 1))
    ;; a copy of the header list (hp, hl) with one more entry (np, nl, vp, vl) at its end; returns its pointer
    (func $append (param $hp i32) (param $hl i32) (param $np i32) (param $nl i32) (param $vp i32) (param $vl i32)
      (result i32)
      (local $new i32) (local $end i32)
      (local.set $new (call $realloc (i32.const 0) (i32.const 0) (i32.const 4)
                                     (i32.mul (i32.add (local.get $hl) (i32.const 1)) (i32.const 16))))
      (memory.copy (local.get $new) (local.get $hp) (i32.mul (local.get $hl) (i32.const 16)))
      (local.set $end (i32.add (local.get $new) (i32.mul (local.get $hl) (i32.const 16))))
      (i32.store (local.get $end) (local.get $np))
      (i32.store offset=4 (local.get $end) (local.get $nl))
      (i32.store offset=8 (local.get $end) (local.get $vp))
      (i32.store offset=12 (local.get $end) (local.get $vl))
      (local.get $new))
    (func (export "post-return") (param i32)
      (global.set $heap (i32.const 1024)))
    (func (export "handle") (param $mp i32) (param $ml i32) (param $pp i32) (param $pl i32) (param $qp i32)
      (param $ql i32) (param $hp i32) (param $hl i32) (param $bp i32) (param $bl i32) (result i32)
      (local $name i32) (local $namel i32) (local $i i32) (local $found i32) (local $msg i32) (local $h i32)
      ;; the name (default "stage"), kept at 160
      (if (call $config (i32.const 16) (i32.const 4) (i32.const 160))
        (then (local.set $name (i32.load (i32.const 160))) (local.set $namel (i32.load (i32.const 164))))
        (else (local.set $name (i32.const 64)) (local.set $namel (i32.const 5))))
      (if (call $config (i32.const 32) (i32.const 4) (i32.const 168)) (then unreachable))
      ;; "require": answer 401 unless a request header has that name
      (if (call $config (i32.const 24) (i32.const 7) (i32.const 176))
        (then
          (block $checked
            (loop $scan
              (br_if $checked (i32.ge_u (local.get $i) (local.get $hl)))
              (local.set $h (i32.add (local.get $hp) (i32.mul (local.get $i) (i32.const 16))))
              (if (call $eq (i32.load (local.get $h)) (i32.load offset=4 (local.get $h))
                            (i32.load (i32.const 176)) (i32.load (i32.const 180)))
                (then (local.set $found (i32.const 1)) (br $checked)))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $scan)))
          (if (i32.eqz (local.get $found))
            (then
              (local.set $msg (call $realloc (i32.const 0) (i32.const 0) (i32.const 1)
                                             (i32.add (i32.const 16) (local.get $namel))))
              (memory.copy (local.get $msg) (i32.const 72) (i32.const 16))
              (memory.copy (i32.add (local.get $msg) (i32.const 16)) (local.get $name) (local.get $namel))
              (i32.store16 (i32.const 256) (i32.const 401))
              (i32.store (i32.const 260) (i32.const 0))
              (i32.store (i32.const 264) (i32.const 0))
              (i32.store (i32.const 268) (local.get $msg))
              (i32.store (i32.const 272) (i32.add (i32.const 16) (local.get $namel)))
              (return (i32.const 256))))))
      ;; pass the request on with ("x-stages", name) appended
      (call $next (local.get $mp) (local.get $ml) (local.get $pp) (local.get $pl) (local.get $qp) (local.get $ql)
                  (call $append (local.get $hp) (local.get $hl) (i32.const 40) (i32.const 8)
                                (local.get $name) (local.get $namel))
                  (i32.add (local.get $hl) (i32.const 1))
                  (local.get $bp) (local.get $bl) (i32.const 512))
      ;; and its answer back with ("x-seen-by", name) appended
      (i32.store16 (i32.const 256) (i32.load16_u (i32.const 512)))
      (i32.store (i32.const 260) (call $append (i32.load (i32.const 516)) (i32.load (i32.const 520))
                                               (i32.const 48) (i32.const 9) (local.get $name) (local.get $namel)))
      (i32.store (i32.const 264) (i32.add (i32.load (i32.const 520)) (i32.const 1)))
      (i32.store (i32.const 268) (i32.load (i32.const 524)))
      (i32.store (i32.const 272) (i32.load (i32.const 528)))
      (i32.const 256))
  )
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
  (export "airssys:web/handler@0.1.1" (instance $hi))
)
