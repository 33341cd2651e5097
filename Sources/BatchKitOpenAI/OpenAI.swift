import BatchKit
