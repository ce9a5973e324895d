package main
import (
 _ "github.com/gin-gonic/gin"
 _ "github.com/beevik/etree"
 _ "github.com/go-playground/form/v4"
 _ "github.com/nats-io/nats.go"
 _ "github.com/nats-io/nats.go/jetstream"
 _ "github.com/nats-io/nats-server/v2/server"
 _ "go.etcd.io/bbolt"
 _ "github.com/google/uuid"
)
func main(){}
