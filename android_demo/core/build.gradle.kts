// The pure-Java core: no Android dependency, so its tests run on any JVM (see ../README.md for
// the plain-javac run CI uses). Golden files: ./gradlew :core:test -PgoldenDir=/path/to/goldens
plugins {
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

dependencies {
    testImplementation(platform(libs.junit.bom))
    testImplementation(libs.junit.jupiter)
    testRuntimeOnly(libs.junit.platform.launcher)
}

tasks.test {
    useJUnitPlatform()
    systemProperty("golden.dir", providers.gradleProperty("goldenDir").getOrElse(""))
    testLogging {
        showStandardStreams = true
        events("passed", "skipped", "failed")
    }
}
