package server

// RaceEnabled tells the black-box tests of this package whether they run
// under the race detector, which slows the server several times over, so
// they can size their loads.
const RaceEnabled = raceEnabled
